// The build step: copies src/ to dist/ and stamps the build's time into dist/build.json.
const fs = require("fs");
const path = require("path");

fs.mkdirSync("dist", { recursive: true });
for (const name of fs.readdirSync("src")) {
  fs.copyFileSync(path.join("src", name), path.join("dist", name));
}
fs.writeFileSync(path.join("dist", "build.json"), JSON.stringify({ builtAt: new Date().toISOString() }));
console.log("built dist/");
