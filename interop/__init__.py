"""Records moving in and out of ITB Clinic: spreadsheet onboarding and FHIR R4 export.

An app of its own because it stands apart from the clinic's daily work: it only reads and writes
through the other apps' services and selectors (the same rules as the staff forms), and nothing
imports it. It sits just below the wiring in the layering (pyproject's import contract).
"""
