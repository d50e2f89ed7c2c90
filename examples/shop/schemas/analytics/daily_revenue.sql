-- Revenue per UTC day, with a month-to-date running total and a 7-day average.
WITH days AS (
    SELECT
        order_date,
        count(*) AS orders,
        count(*) FILTER (WHERE is_revenue) AS revenue_orders,
        count(DISTINCT customer_id) FILTER (WHERE is_revenue) AS customers,
        count(*) FILTER (WHERE is_revenue AND customer_order_number = 1) AS first_orders,
        CAST(coalesce(sum(items_total) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2)) AS items_revenue,
        CAST(coalesce(sum(shipping_fee) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2)) AS shipping_revenue,
        CAST(coalesce(sum(order_total) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2)) AS revenue
    FROM analytics.orders_enriched
    GROUP BY order_date
)
SELECT
    order_date,
    orders,
    revenue_orders,
    customers,
    first_orders,
    items_revenue,
    shipping_revenue,
    revenue,
    CAST(
        sum(revenue) OVER (PARTITION BY date_trunc('month', order_date) ORDER BY order_date)
        AS DECIMAL(18, 2)
    ) AS month_to_date_revenue,
    CAST(
        avg(revenue) OVER (ORDER BY order_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)
        AS DECIMAL(18, 2)
    ) AS revenue_7day_avg
FROM days
