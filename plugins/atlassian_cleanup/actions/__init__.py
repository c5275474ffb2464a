"""The actions: the journalled write engine, the state store, the state transitions and the e-mails."""
