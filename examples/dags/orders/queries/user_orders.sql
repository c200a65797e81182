DROP TABLE IF EXISTS user_orders;
CREATE TABLE user_orders AS
SELECT u.id AS user_id, u.country, o.id AS order_id, o.amount, o.ordered_at
FROM orders_clean o
JOIN users_clean u ON u.id = o.user_id;
