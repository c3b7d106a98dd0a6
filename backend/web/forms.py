"""Forms to the services' inputs: a form's fields become the same dict the API's JSON body is, checked by the
same pydantic schema, so that a page refuses exactly what the API refuses, each message beside its field."""
from pydantic import ValidationError

from backend.errors import DomainError
from backend.schemas.validation import validation_failed_from_pydantic


def text(form, name):
    """A text field, stripped; None when empty."""
    value = (form.get(name) or "").strip()
    return value or None


def integer(form, name):
    """A number field as an int when it is one; the text as sent otherwise (the schema then says why), None when
    empty."""
    value = text(form, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def env_lines(value):
    """KEY=value lines (blank lines and # comments skipped) as a dict; a line without '=' is an error."""
    variables, bad = {}, []
    for number, line in enumerate((value or "").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, val = line.partition("=")
        if not sep:
            bad.append(number)
            continue
        variables[key.strip()] = val
    if bad:
        raise DomainError("each line is KEY=value", fields={"env": f"line {bad[0]} has no '='"}, status=422)
    return variables


def checked(schema, data):
    """schema's model of data, or ValidationFailed with a message per field (as the API answers)."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_failed_from_pydantic(exc) from None


def field_errors(exc):
    """{field: message} of a DomainError, by the form's field names (resources.cores -> cores)."""
    return {key.rsplit(".", 1)[-1] if key.startswith("resources.") else key.split(".")[0]: message
            for key, message in (exc.fields or {}).items()}
