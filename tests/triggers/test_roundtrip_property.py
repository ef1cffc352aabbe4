"""Property: a body the schema accepts comes back unchanged (after the documented normalisation),
and is stored exactly as it came back."""

import unicodedata
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from odeus_triggers.api.base_schemas import IGNORABLE
from odeus_triggers.db.tables import Trigger, TriggerInputField
from odeus_triggers.integrations.service import create_integration
from odeus_triggers.triggers.slugs import field_slug

from support.helpers import create_path

C0 = "".join(map(chr, range(0x20)))
line_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0)
text_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0.replace("\t\n\r", ""))
# A trigger's name holds no Cc or Cf character at all, and at least one visible one.
name_chars = st.characters(blacklist_categories=("Cs", "Cc", "Cf"))


def _visible(char: str) -> bool:
    return not char.isspace() and not any(lo <= ord(char) <= hi for lo, hi in IGNORABLE)


def trimmed(max_size: int) -> st.SearchStrategy[str]:
    return st.text(line_chars, min_size=1, max_size=max_size).filter(lambda s: s.strip() == s and s != "")


def trimmed_name(max_size: int) -> st.SearchStrategy[str]:
    return st.text(name_chars, min_size=1, max_size=max_size).filter(
        lambda s: s.strip() == s and any(map(_visible, s)) and len(unicodedata.normalize("NFC", s)) <= max_size
    )


def padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", " ", "\u00a0 "]), core, st.sampled_from(["", " ", " \u3000"])).map("".join)


option = st.fixed_dictionaries({"label": st.text(line_chars, min_size=1, max_size=100),
                                "value": st.text(line_chars, min_size=1, max_size=200)})
plain_type = st.sampled_from(["TEXT", "MULTI_LINE_TEXT", "NUMBER", "BOOLEAN", "PASSWORD", "VECTOR"])
common = {
    "description": st.none() | st.text(text_chars, max_size=500),
    "placeholder": st.none() | st.text(line_chars, max_size=200),
    "required": st.none() | st.booleans(),
}
plain_field = st.fixed_dictionaries({"label": padded(trimmed(90)), "type": plain_type},
                                    optional={**common, "allowMultiSelect": st.none() | st.just(False)})
select_field = st.fixed_dictionaries(
    {"label": padded(trimmed(90)), "type": st.just("SELECT"),
     "options": st.lists(option, min_size=1, max_size=5, unique_by=lambda o: o["value"])},
    optional={**common, "allowMultiSelect": st.none() | st.booleans()},
)
fields = st.lists(plain_field | select_field, max_size=6, unique_by=lambda f: field_slug(f["label"].strip()))
bodies = st.fixed_dictionaries(
    {"name": padded(trimmed_name(96))},
    optional={
        "description": st.none() | st.text(text_chars, max_size=90),
        # Saved code must compile, so arbitrary text travels inside a comment; blank code is stored as null.
        "pollingCode": st.none() | st.sampled_from(["", " ", "\n\t "]) | st.text(text_chars, max_size=480).map(
            lambda s: "/*" + s.replace("*/", "* /") + "*/ return [];"
        ),
        "inputFields": st.none() | fields,
    },
)


def expected_field(f: dict) -> dict:
    is_select = f["type"] == "SELECT"
    return {
        "slug": field_slug(f["label"].strip()),
        "label": f["label"].strip(),
        "type": f["type"],
        "description": f.get("description") or "",
        "placeholder": f.get("placeholder"),
        "required": bool(f.get("required")),
        "options": f["options"] if is_select else None,
        "allowMultiSelect": bool(f.get("allowMultiSelect")) if is_select else None,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies)
async def test_accepted_bodies_round_trip(app, client, tenant, body):
    integration = await create_integration(app.state.engine, tenant.workspace_id, "Prop", None)
    response = await client.post(create_path("", integration["id"]), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    trigger = response.json()["trigger"]
    code = body.get("pollingCode")
    assert trigger["name"] == unicodedata.normalize("NFC", body["name"].strip())
    assert trigger["description"] == (body.get("description") or "")
    assert trigger["pollingCode"] == (code if code and code.strip() else None)
    assert trigger["type"] == ("POLLING" if trigger["pollingCode"] else "WEBHOOK")
    assert trigger["inputFields"] == [expected_field(f) for f in body.get("inputFields") or []]

    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(Trigger).where(Trigger.id == uuid.UUID(trigger["id"])))).one()
        stored_fields = (await conn.execute(
            select(TriggerInputField).where(TriggerInputField.trigger_id == row.id).order_by(TriggerInputField.position)
        )).all()
    assert (row.name, row.description, row.polling_code) == (trigger["name"], trigger["description"], trigger["pollingCode"])
    assert [(f.label, f.description, f.placeholder, f.options) for f in stored_fields] == [
        (f["label"], f["description"], f["placeholder"], f["options"]) for f in trigger["inputFields"]
    ]
