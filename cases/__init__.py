"""Cases: the incident-type catalogue (grades, time limits, routing), the work-order
lifecycle (who may move a case where) and the work-order store with its audit trail and
statistics."""
