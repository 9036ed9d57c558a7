"""The tele-expertise workflow: the Task state machine, routing, clarification, completion."""
