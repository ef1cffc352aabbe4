// Must NOT compile: a SELECT option is a {label, value} object, never a bare string or number.
// check.sh asserts that `tsc --strict` rejects this file, and on the MUST-NOT-COMPILE line.
import type { components } from "./schema.js";

type TriggerIn = components["schemas"]["TriggerIn"];

export const body: TriggerIn = {
  name: "New Issue Created",
  inputFields: [
    {
      label: "Priority Filter",
      type: "SELECT",
      description: "Only trigger for issues with this priority",
      options: [
        { label: "All", value: "all" },
        "high", // MUST-NOT-COMPILE
      ],
      required: false
    }
  ]
};
