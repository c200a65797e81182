DROP TABLE IF EXISTS revenue_by_country;
CREATE TABLE revenue_by_country AS
SELECT country, sum(amount) AS revenue
FROM user_orders
GROUP BY country;
