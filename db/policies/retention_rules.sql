-- An agent sets and reads its own retention rules; analysts read all; the sweep runs as the owner.
SELECT memory_system._apply_agent_policies('memory_system.retention_rules');
