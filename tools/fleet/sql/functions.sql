-- The top functions of each group by self time, with total time, as shares of the group's
-- samples and normalised by its exposure: milliseconds per second of process CPU time and
-- seconds per hour of wall time (functions as sql/stack_functions.sql names them); total time
-- counts a function once per stack, however often it recurs there.
WITH per_stack AS (
  SELECT {keys}, stack_id, SUM(weight) AS weight, SUM(ns) AS ns
  FROM keyed
  GROUP BY {keys}, stack_id
),
self_time AS (
  SELECT {ps.keys}, l.function, SUM(ps.weight) AS weight, SUM(ps.ns) AS ns
  FROM per_stack ps JOIN leaf_function l ON l.stack_id = ps.stack_id
  GROUP BY {ps.keys}, l.function
),
total_time AS (
  SELECT {ps.keys}, f.function, SUM(ps.weight) AS weight, SUM(ps.ns) AS ns
  FROM per_stack ps JOIN stack_function f ON f.stack_id = ps.stack_id
  GROUP BY {ps.keys}, f.function
),
group_weight AS (
  SELECT {keys}, SUM(weight) AS weight FROM per_stack GROUP BY {keys}
),
exposure AS (
  SELECT {profile_keys}, SUM(process_cpu_ns) AS cpu_ns, SUM(duration_ns) AS wall_ns
  FROM keyed_profiles
  GROUP BY {profile_keys}
),
ranked AS (
  SELECT {t.keys}, t.function,
         COALESCE(s.weight, 0) AS self_weight, t.weight AS total_weight,
         COALESCE(s.ns, 0) AS self_ns, t.ns AS total_ns,
         ROW_NUMBER() OVER (PARTITION BY {t.keys}
                            ORDER BY COALESCE(s.weight, 0) DESC, t.weight DESC, t.function)
           AS rank
  FROM total_time t LEFT JOIN self_time s ON {t=s} AND s.function = t.function
)
SELECT {r.keys}, r.rank, r.function, r.self_weight, r.total_weight,
       CAST(r.self_weight AS DOUBLE) / NULLIF(g.weight, 0) AS self_share,
       CAST(r.total_weight AS DOUBLE) / NULLIF(g.weight, 0) AS total_share,
       CAST(r.self_ns AS DOUBLE) * 1000 / NULLIF(e.cpu_ns, 0) AS self_ms_per_cpu_s,
       CAST(r.self_ns AS DOUBLE) * 3600 / NULLIF(e.wall_ns, 0) AS self_s_per_hour
FROM ranked r
JOIN group_weight g ON {r=g}
JOIN exposure e ON {r=e}
WHERE r.rank <= {top}
ORDER BY {r.keys}, r.rank
