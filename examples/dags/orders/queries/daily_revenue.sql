DROP TABLE IF EXISTS daily_revenue;
CREATE TABLE daily_revenue AS
SELECT date(ordered_at) AS day, sum(amount) AS revenue, count(*) AS orders
FROM orders_clean
GROUP BY date(ordered_at);
