-- An agent reads its own recorded reads (it is granted SELECT only: memory_system._record_read
-- writes them, as the owner); analysts read all.
SELECT memory_system._apply_agent_policies('memory_system.reads');
