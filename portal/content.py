"""Plain words for the portal: what a pump's alarm sounds like, what to bring, where to be.

Display text, not clinical rules: the dates themselves come from the refill visit and the
pump catalogue (refills/, pumps/). Wording follows docs/domain.md "Why a missed refill is an emergency".
"""

from pumps.models import PumpModel
from refills.models import Appointment

GENERIC_ALARM = (
    "If your pump makes any beeping or alarm sound, phone the clinic the same day. "
    "Do not wait for your next appointment."
)


def alarm_description(*, pump_model: PumpModel | None) -> list[str]:
    if pump_model is None:
        return [GENERIC_ALARM]
    name = pump_model.name.lower()
    if "synchromed" in name:
        return [
            "Your pump can sound an alarm: a beeping, two-tone sound that comes from your tummy, "
            "where the pump is. It repeats until the clinic deals with it.",
            "A low-reservoir alarm means the pump is running out of medicine and must be refilled soon.",
            "A critical alarm means the pump may stop, or has stopped, giving medicine "
            "(for example: empty, a fault, or the battery at its end).",
            GENERIC_ALARM,
        ]
    if pump_model.flow == PumpModel.Flow.CONSTANT and not pump_model.has_battery:
        return [
            "Your pump has no battery and no alarm. Keeping to your refill dates is the only thing "
            "that stops it from running empty.",
        ]
    return [
        "Your pump may be able to warn you with a sound. Ask the clinic what your pump's alarm sounds like.",
        GENERIC_ALARM,
    ]


WHAT_TO_BRING = {
    Appointment.Kind.REFILL: [
        "Your pump card (the wallet card from the clinic)",
        "A list of the medicines you take now",
        "Clothes that make your tummy, where the pump is, easy to reach",
    ],
    Appointment.Kind.REPLACEMENT: [
        "Your pump card",
        "A list of the medicines you take now",
        "Things for a hospital stay of a few days",
    ],
    Appointment.Kind.TRIAL: [
        "A list of the medicines you take now",
        "Someone to take you home: you may feel weak or sleepy for some hours",
    ],
    Appointment.Kind.REVIEW: [
        "Your pump card",
        "A list of the medicines you take now",
        "Any questions you want to ask",
    ],
}


def what_to_bring(*, appointment: Appointment) -> list[str]:
    return WHAT_TO_BRING.get(appointment.kind, WHAT_TO_BRING[Appointment.Kind.REVIEW])


HOME_VISIT = "A nurse will visit you at home."

# At home nothing is brought: the nurse needs these to hand.
HAVE_READY_AT_HOME = [
    "Your pump card (the wallet card from the clinic)",
    "A list of the medicines you take now",
    "Somewhere quiet to lie down, with your tummy, where the pump is, easy to reach",
]


def what_to_have_ready(*, appointment: Appointment) -> list[str]:
    """For a home visit: what to have ready for the nurse (never "please bring")."""
    return HAVE_READY_AT_HOME if appointment.is_home_visit else what_to_bring(appointment=appointment)


def appointment_where(*, appointment: Appointment, clinic_address: str, include_home_address: bool = True) -> str:
    """Where the appointment is, for the patient: the room and the clinic's address, or, for a
    home visit, the patient's own address (no clinic address added to it)."""
    if appointment.is_home_visit:
        lines = appointment.patient.address_lines if include_home_address else []
        return ", ".join(lines) if lines else "Your home"
    return f"{appointment.place}, {clinic_address}"
