-- A sign-in that ends on an app host hands over with a one-time code; the code now works
-- only in the browser that started the sign-in on that host (the hash of a cookie that
-- host set). Rows written before this column existed hold '' and never match.
ALTER TABLE login_transactions ADD COLUMN target_binding_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE handoffs ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
