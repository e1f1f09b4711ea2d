-- Every sample row with its profile's group keys, its time (weight in intervals times the
-- profile's interval) and the name collapsed stacks give its thread.
CREATE OR REPLACE TEMPORARY VIEW keyed AS
SELECT s.profile_id, s.stack_id, s.weight, s.samples, s.weight * p.interval_ns AS ns,
       CASE WHEN s.thread = '' THEN CONCAT('thread-', CAST(s.tid AS STRING))
            ELSE s.thread END AS thread_name{sample_key_exprs}
FROM samples s JOIN keyed_profiles p ON p.profile_id = s.profile_id
