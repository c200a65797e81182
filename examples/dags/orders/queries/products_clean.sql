DROP TABLE IF EXISTS products_clean;
CREATE TABLE products_clean AS
SELECT id, name, category, price
FROM products;
