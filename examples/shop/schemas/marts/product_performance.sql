-- Sales and reviews per product, ranked within each category.
WITH sales AS (
    SELECT
        l.product_id,
        count(DISTINCT l.order_id) AS orders,
        count(DISTINCT o.customer_id) AS customers,
        CAST(sum(l.quantity) AS BIGINT) AS units_sold,
        CAST(sum(l.line_total) AS DECIMAL(18, 2)) AS revenue,
        CAST(sum(l.gross_amount - l.line_total) AS DECIMAL(18, 2)) AS discounts_given
    FROM analytics.order_lines AS l
    JOIN shop.orders AS o ON o.order_id = l.order_id
    WHERE o.status IN ('paid', 'shipped', 'delivered')
    GROUP BY l.product_id
),
reviews AS (
    SELECT
        product_id,
        count(*) AS reviews,
        CAST(round(avg(rating), 2) AS DECIMAL(3, 2)) AS avg_rating,
        avg(sentiment) AS avg_sentiment
    FROM shop.product_reviews
    GROUP BY product_id
)
SELECT
    p.product_id,
    p.sku,
    p.name,
    p.category,
    p.discontinued,
    coalesce(s.orders, 0) AS orders,
    coalesce(s.customers, 0) AS customers,
    coalesce(s.units_sold, 0) AS units_sold,
    coalesce(s.revenue, 0.00) AS revenue,
    coalesce(s.discounts_given, 0.00) AS discounts_given,
    coalesce(r.reviews, 0) AS reviews,
    r.avg_rating,
    r.avg_sentiment,
    row_number() OVER (
        PARTITION BY p.category ORDER BY coalesce(s.revenue, 0) DESC, p.product_id
    ) AS category_rank
FROM shop.products AS p
LEFT JOIN sales AS s ON s.product_id = p.product_id
LEFT JOIN reviews AS r ON r.product_id = p.product_id
