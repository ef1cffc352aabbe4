"""Names are unique per integration ignoring case; slugs are unique and race-safe."""

import asyncio

from support.helpers import assert_problem, create_path, make_tenant


async def create(client, tenant, name, base=""):
    return await client.post(create_path(base, tenant.integration_id), json={"name": name}, headers=tenant.auth)


async def test_duplicate_name_ignoring_case_and_spaces_is_409(client, tenant, base):
    assert (await create(client, tenant, "Deploy Finished", base)).status_code == 201
    for duplicate in ("deploy finished", "  DEPLOY FINISHED ", "Deploy Finished"):
        assert_problem(await create(client, tenant, duplicate, base), 409, "trigger_name_conflict")


async def test_case_folding_covers_non_ascii_letters(client, tenant):
    assert (await create(client, tenant, "École Ünïversité")).status_code == 201
    assert_problem(await create(client, tenant, "école ünïversité"), 409, "trigger_name_conflict")


async def test_same_name_in_another_integration_is_fine(app, client, tenant):
    other = await make_tenant(app)
    assert (await create(client, tenant, "Shared name")).status_code == 201
    response = await create(client, other, "Shared name")
    assert response.status_code == 201
    assert response.json()["trigger"]["slug"] == "shared-name"


async def test_colliding_slugs_take_numbered_suffixes(client, tenant):
    slugs = [(await create(client, tenant, name)).json()["trigger"]["slug"]
             for name in ("Issue: new!", "Issue new", "issue -- new?", "ISSUE/NEW")]
    assert slugs == ["issue-new", "issue-new-2", "issue-new-3", "issue-new-4"]


async def test_names_without_sluggable_characters_fall_back_to_trigger(client, tenant):
    slugs = [(await create(client, tenant, name)).json()["trigger"]["slug"] for name in ("!!!", "???", "💥")]
    assert slugs == ["trigger", "trigger-2", "trigger-3"]


async def test_slugs_are_transliterated_kebab_case(client, tenant):
    response = await create(client, tenant, "Nouvelle Tâche Créée  (v2)")
    assert response.json()["trigger"]["slug"] == "nouvelle-tache-creee-v2"


async def test_a_long_slug_stays_within_100_characters_with_its_suffix(client, tenant):
    first = (await create(client, tenant, "a" * 100)).json()["trigger"]["slug"]
    second = (await create(client, tenant, "á" + "a" * 99)).json()["trigger"]["slug"]
    assert first == "a" * 100
    assert second == "a" * 98 + "-2"


async def test_twenty_concurrent_creates_with_one_name_give_one_201(client, tenant):
    responses = await asyncio.gather(*(create(client, tenant, "Race condition") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, statuses
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "trigger_name_conflict")


async def test_twenty_concurrent_names_with_one_slug_give_twenty_slugs(client, tenant):
    names = [f"Same slug{'!' * i}" for i in range(20)]
    responses = await asyncio.gather(*(create(client, tenant, name) for name in names))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses if r.status_code != 201]
    slugs = {r.json()["trigger"]["slug"] for r in responses}
    assert slugs == {"same-slug", *(f"same-slug-{n}" for n in range(2, 21))}
