"""
The patient portal: patients and their carers see their own next appointment and pump status.

It stands as its own app because it serves a different audience (patients and carers on a
phone, not staff at a desk), with different permissions (read-only, scoped to the logged-in
patient or a carer's linked patients: any other patient's object answers 404) and its own
templates. It reads from `patients`, `pumps` and `refills`; none of them imports it.
"""
