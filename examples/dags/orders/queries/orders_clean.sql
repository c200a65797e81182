DROP TABLE IF EXISTS orders_clean;
CREATE TABLE orders_clean AS
SELECT id, user_id, product_id, quantity, amount, ordered_at
FROM orders
WHERE status <> 'cancelled'
  AND date(ordered_at) <= '{{ ds }}';
