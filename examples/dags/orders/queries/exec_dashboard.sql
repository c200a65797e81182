DROP TABLE IF EXISTS exec_dashboard;
CREATE TABLE exec_dashboard AS
SELECT 'revenue' AS metric, sum(revenue) AS value FROM kpi_daily
UNION ALL SELECT 'countries', count(*) FROM revenue_by_country
UNION ALL SELECT 'top_products', count(*) FROM top_products
UNION ALL SELECT 'at_risk_users', count(*) FROM churn_risk;
