-- Each group's exposure: profiles, samples, the process CPU time and wall time they cover.
SELECT {keys}, COUNT(*) AS profiles, SUM(samples) AS samples, SUM(weight) AS weight,
       SUM(process_cpu_ns) AS cpu_ns, SUM(duration_ns) AS wall_ns
FROM keyed_profiles
GROUP BY {keys}
ORDER BY {keys}
