DROP TABLE IF EXISTS kpi_daily;
CREATE TABLE kpi_daily AS
SELECT d.day, d.revenue, d.orders, (SELECT avg(lifetime_value) FROM user_ltv) AS avg_ltv
FROM daily_revenue d;
