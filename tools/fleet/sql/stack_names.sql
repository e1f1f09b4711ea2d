-- Every stack's names, outermost first: frames by depth, a frame's inline chain by position.
SELECT st.stack_id, st.depth, sy.position, sy.function
FROM stacks st JOIN symbols sy ON sy.frame_id = st.frame_id
ORDER BY st.stack_id, st.depth, sy.position
