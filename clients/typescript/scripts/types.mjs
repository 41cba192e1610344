// Generate src/schema.d.ts from openapi.json with openapi-typescript, or (--check) fail when
// the committed types are not what the committed document generates (the drift check).
// The document itself is written by `flask --app wsgi openapi` (`make openapi`); the Python
// suite fails when it differs from the routes.
import { readFile, writeFile } from "node:fs/promises";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

const here = new URL("..", import.meta.url);
const documentUrl = new URL("openapi.json", here);
const typesUrl = new URL("src/schema.d.ts", here);

const ast = await openapiTS(JSON.parse(await readFile(documentUrl, "utf8")));
const generated = COMMENT_HEADER + astToString(ast);

if (process.argv.includes("--check")) {
  const committed = await readFile(typesUrl, "utf8").catch(() => "");
  if (committed !== generated) {
    console.error(
      "src/schema.d.ts is out of date with openapi.json: run `make openapi` and commit both.",
    );
    process.exit(1);
  }
  console.log("src/schema.d.ts matches openapi.json");
} else {
  await writeFile(typesUrl, generated);
  console.log("wrote src/schema.d.ts");
}
