// The seed's request, as a TypeScript user writes it with openapi-fetch and the types that
// openapi-typescript generates from /openapi.json. check.sh type-checks it with `tsc --strict`,
// then runs it against the service (CLIENTS_BASE, CLIENTS_KEY).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];

// A Problem other than a validation error has no `errors`: the type must allow that.
const notFound: Problem = {
  type: "about:blank",
  title: "Not Found",
  status: 404,
  detail: "Integration not found",
  code: "not_found",
  requestId: "req_1",
};

async function main(): Promise<void> {
  const base = process.env.CLIENTS_BASE ?? "http://127.0.0.1:8000";
  const client = createClient<paths>({
    baseUrl: base,
    headers: { Authorization: `Bearer ${process.env.CLIENTS_KEY ?? "YOUR_API_KEY"}` },
  });

  // A plain {name} is a whole Create Integration body.
  const created = await client.POST("/integrations/v1/create", { body: { name: "TypeScript check" } });
  if (!created.data) throw new Error(`create integration: ${created.response.status}`);
  const integrationId = created.data.integration.id;

  // The seed's body, exactly as the seed writes it.
  const { data, error, response } = await client.POST("/integrations/v1/{integrationId}/triggers/create", {
    params: { path: { integrationId } },
    body: {
      name: "New Issue Created",
      description: "Triggers when a new issue is created in the project tracker",
      pollingCode: `
        const response = await fetch('https://api.example.com/issues?since=' + lastPollTime, {
          headers: {
            'Authorization': 'Bearer ' + secrets.API_TOKEN
          }
        });

        if (!response.ok) {
          throw new Error('Failed to fetch issues');
        }

        const issues = await response.json();
        return issues.map(issue => ({
          id: issue.id,
          title: issue.title,
          description: issue.description,
          createdAt: issue.created_at
        }));
      `,
      inputFields: [
        {
          label: "Project ID",
          type: "TEXT",
          description: "The ID of the project to monitor",
          placeholder: "e.g., proj_123",
          required: true
        },
        {
          label: "Priority Filter",
          type: "SELECT",
          description: "Only trigger for issues with this priority",
          options: [
            { label: "All", value: "all" },
            { label: "High", value: "high" },
            { label: "Medium", value: "medium" },
            { label: "Low", value: "low" }
          ],
          required: false
        }
      ]
    },
  });
  if (error) throw new Error(`create trigger: ${response.status} ${error.code}: ${error.detail}`);
  const trigger = data.trigger;
  const options = trigger.inputFields[1].options ?? [];
  const labels: string[] = options.map((o) => o.label);
  console.log(`created trigger ${trigger.id} (${trigger.slug}), options ${labels.join(", ")}`);

  // The same name again: a 409 Problem, without `errors`.
  const again = await client.POST("/integrations/v1/{integrationId}/triggers/create", {
    params: { path: { integrationId } },
    body: { name: "New Issue Created" },
  });
  if (again.response.status !== 409 || !again.error) throw new Error(`expected 409, got ${again.response.status}`);
  const conflict: Problem = again.error;
  console.log(`409 ${conflict.code}; errors: ${conflict.errors?.length ?? "absent"}; shape of a 404: ${notFound.code}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
