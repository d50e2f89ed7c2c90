-- The ten most valuable customers of each country, and their rank overall.
WITH ranked AS (
    SELECT
        customer_id,
        full_name,
        country,
        segment,
        revenue_orders,
        lifetime_revenue,
        last_order_at,
        rank() OVER (ORDER BY lifetime_revenue DESC) AS overall_rank,
        rank() OVER (PARTITION BY country ORDER BY lifetime_revenue DESC) AS country_rank
    -- unqualified: not in marts, so found through defaults.search_path (analytics)
    FROM customer_lifetime
    WHERE lifetime_revenue > 0
)
SELECT
    country,
    country_rank,
    overall_rank,
    customer_id,
    full_name,
    segment,
    revenue_orders,
    lifetime_revenue,
    last_order_at
FROM ranked
WHERE country_rank <= 10
ORDER BY country, country_rank, customer_id
