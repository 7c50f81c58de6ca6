from .roles import Role, user_roles


def roles(request) -> dict:
    current = user_roles(getattr(request, "user", None))
    return {
        "user_roles": current,
        "is_nurse": Role.NURSE in current,
        "is_clinician": Role.CLINICIAN in current,
        "is_patient_user": Role.PATIENT in current,
        "is_clinic_admin": Role.CLINIC_ADMIN in current,
    }
