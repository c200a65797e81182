DROP TABLE IF EXISTS users_clean;
CREATE TABLE users_clean AS
SELECT id, lower(email) AS email, country, signed_up_at
FROM users
WHERE email IS NOT NULL;
