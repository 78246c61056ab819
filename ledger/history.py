"""Saving a row with its history row (django-simple-history): the acting user and the reason go
on the history row the save writes. Services call this for every change of a model with history."""


def save_with_history(obj, *, actor, reason: str, update_fields=None) -> None:
    obj._history_user = actor
    obj._change_reason = reason
    obj.save(update_fields=update_fields) if update_fields else obj.save()
