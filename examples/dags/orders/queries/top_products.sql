DROP TABLE IF EXISTS top_products;
CREATE TABLE top_products AS
SELECT product_id, category, revenue
FROM product_sales
ORDER BY revenue DESC
LIMIT {{ params.top_n | default(10) }};
