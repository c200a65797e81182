DROP TABLE IF EXISTS product_sales;
CREATE TABLE product_sales AS
SELECT p.id AS product_id, p.category, sum(o.quantity) AS units, sum(o.amount) AS revenue
FROM orders_clean o
JOIN products_clean p ON p.id = o.product_id
GROUP BY p.id, p.category;
