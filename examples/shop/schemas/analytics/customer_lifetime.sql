-- One row per customer, including those who never ordered: what they bought over
-- their lifetime and a simple value segment.
WITH per_customer AS (
    SELECT
        customer_id,
        count(*) AS orders,
        count(*) FILTER (WHERE is_revenue) AS revenue_orders,
        CAST(coalesce(sum(order_total) FILTER (WHERE is_revenue), 0) AS DECIMAL(18, 2)) AS lifetime_revenue,
        CAST(coalesce(sum(refunded_amount), 0) AS DECIMAL(18, 2)) AS lifetime_refunds,
        count(DISTINCT coupon_code) AS coupons_used,
        min(ordered_at) AS first_order_at,
        max(ordered_at) AS last_order_at
    FROM analytics.orders_enriched
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    c.full_name,
    c.country,
    c.signup_date,
    c.is_active,
    coalesce(pc.orders, 0) AS orders,
    coalesce(pc.revenue_orders, 0) AS revenue_orders,
    coalesce(pc.lifetime_revenue, 0.00) AS lifetime_revenue,
    coalesce(pc.lifetime_refunds, 0.00) AS lifetime_refunds,
    CAST(
        CASE WHEN pc.revenue_orders > 0 THEN round(pc.lifetime_revenue / pc.revenue_orders, 2) END
        AS DECIMAL(12, 2)
    ) AS avg_order_value,
    coalesce(pc.coupons_used, 0) AS coupons_used,
    pc.first_order_at,
    pc.last_order_at,
    CASE
        WHEN pc.lifetime_revenue >= 5000 THEN 'gold'
        WHEN pc.lifetime_revenue >= 1000 THEN 'silver'
        WHEN pc.lifetime_revenue > 0 THEN 'bronze'
        ELSE 'prospect'
    END AS segment
FROM shop.customers AS c
LEFT JOIN per_customer AS pc ON pc.customer_id = c.customer_id
