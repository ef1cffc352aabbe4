"""The seed documentation's example, used in OpenAPI and in tests."""

SEED_POLLING_CODE = """
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
"""

SEED_TRIGGER = {
    "name": "New Issue Created",
    "description": "Triggers when a new issue is created in the project tracker",
    "pollingCode": SEED_POLLING_CODE,
    "inputFields": [
        {
            "label": "Project ID",
            "type": "TEXT",
            "description": "The ID of the project to monitor",
            "placeholder": "e.g., proj_123",
            "required": True,
        },
        {
            "label": "Priority Filter",
            "type": "SELECT",
            "description": "Only trigger for issues with this priority",
            "options": [
                {"label": "All", "value": "all"},
                {"label": "High", "value": "high"},
                {"label": "Medium", "value": "medium"},
                {"label": "Low", "value": "low"},
            ],
            "required": False,
        },
    ],
}
