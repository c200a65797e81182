DROP TABLE IF EXISTS churn_risk;
CREATE TABLE churn_risk AS
SELECT u.id AS user_id, u.email, l.lifetime_value
FROM users_clean u
LEFT JOIN user_ltv l ON l.user_id = u.id
WHERE l.orders IS NULL OR l.orders < 2;
