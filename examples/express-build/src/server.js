const express = require("express");
const build = require("./build.json");

const app = express();
app.get("/", (req, res) => res.send(`hello ${process.env.GREETING || "nobody"} from a built express app`));
app.get("/health", (req, res) => res.json({ ok: true, builtAt: build.builtAt }));
app.listen(Number(process.env.PORT), process.env.HOST);
