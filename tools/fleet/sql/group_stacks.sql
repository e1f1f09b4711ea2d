-- Weight per group, thread and stack: each group's profile, as collapsed stacks.
SELECT {keys}, thread_name, stack_id, SUM(weight) AS weight
FROM keyed
GROUP BY {keys}, thread_name, stack_id
ORDER BY {keys}, thread_name, stack_id
