-- Two sides of a comparison (the profiles whose {key} is the base or the new value, in the
-- `sides` table), each profile one observation: per group, side and function, the sums of the
-- function's self and total shares of each profile's weight and of their squares, and the
-- side's profile count (a profile without the function counts as a share of 0). Welch's test
-- and the false discovery rate are computed from these (tools/fleet/stats.py).
WITH chosen AS (
  SELECT {p.keys}, sd.side, p.profile_id, p.weight
  FROM keyed_profiles p JOIN sides sd ON sd.value = p.{key}
  WHERE p.weight > 0
),
self_weight AS (
  SELECT s.profile_id, l.function, SUM(s.weight) AS weight
  FROM samples s JOIN leaf_function l ON l.stack_id = s.stack_id
  GROUP BY s.profile_id, l.function
),
total_weight AS (
  SELECT s.profile_id, f.function, SUM(s.weight) AS weight
  FROM samples s JOIN stack_function f ON f.stack_id = s.stack_id
  GROUP BY s.profile_id, f.function
),
shares AS (
  SELECT {c.keys}, c.side, t.function,
         CAST(COALESCE(sw.weight, 0) AS DOUBLE) / c.weight AS self_share,
         CAST(t.weight AS DOUBLE) / c.weight AS total_share
  FROM chosen c
  JOIN total_weight t ON t.profile_id = c.profile_id
  LEFT JOIN self_weight sw ON sw.profile_id = c.profile_id AND sw.function = t.function
),
sums AS (
  SELECT {keys}, side, function,
         SUM(self_share) AS self_sum, SUM(self_share * self_share) AS self_squares,
         SUM(total_share) AS total_sum, SUM(total_share * total_share) AS total_squares
  FROM shares
  GROUP BY {keys}, side, function
),
counts AS (
  SELECT {keys}, side, COUNT(*) AS profiles FROM chosen GROUP BY {keys}, side
)
SELECT {c.keys}, c.side, c.profiles, s.function,
       s.self_sum, s.self_squares, s.total_sum, s.total_squares
FROM counts c LEFT JOIN sums s ON {c=s} AND s.side = c.side
ORDER BY {c.keys}, c.side, s.function
