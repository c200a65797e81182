DROP TABLE IF EXISTS user_ltv;
CREATE TABLE user_ltv AS
SELECT user_id, country, sum(amount) AS lifetime_value, count(*) AS orders
FROM user_orders
GROUP BY user_id, country;
