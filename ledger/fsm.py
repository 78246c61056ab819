"""State machines (django-fsm-2) with one addition: every transition method is marked
`alters_data`, so a template can never call it (Django templates refuse such methods). Models
import `transition` from here instead of from django_fsm."""

from django_fsm import transition as fsm_transition


def transition(**kwargs):
    """django_fsm.transition, with the method marked alters_data (kept through django-fsm's wraps)."""
    def decorate(func):
        func.alters_data = True
        wrapped = fsm_transition(**kwargs)(func)
        wrapped.alters_data = True
        return wrapped

    return decorate
