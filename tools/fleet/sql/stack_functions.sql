-- Each stack's functions: the one its leaf frame is in (where self time goes) and every
-- function anywhere on it, once. A function is a frame's outermost name (inlined code counts
-- for the function it was inlined into, as `vignette report` counts it).
CREATE OR REPLACE TEMPORARY VIEW leaf_function AS
SELECT st.stack_id, sy.function
FROM stacks st JOIN symbols sy ON sy.frame_id = st.frame_id AND sy.position = 0
WHERE st.leaf;

CREATE OR REPLACE TEMPORARY VIEW stack_function AS
SELECT DISTINCT st.stack_id, sy.function
FROM stacks st JOIN symbols sy ON sy.frame_id = st.frame_id AND sy.position = 0;
