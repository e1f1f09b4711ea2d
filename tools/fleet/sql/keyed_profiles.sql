-- Each profile with its group keys: text, never null (a missing value reads '-'), so that
-- groups join on plain equality in every engine.
CREATE OR REPLACE TEMPORARY VIEW keyed_profiles AS
SELECT profile_id, interval_ns, samples, weight, process_cpu_ns, duration_ns{profile_key_exprs}
FROM profiles
