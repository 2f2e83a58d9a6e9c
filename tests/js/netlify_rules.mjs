// Parses a generated _headers and _redirects exactly as Netlify's build does
// (@netlify/headers-parser, @netlify/redirect-parser) and answers, for each
// request path given on stdin (JSON array), which headers apply. Rules are
// combined as netlify-cli does (every matching rule, later wins), and each
// header's number of setters is counted, so a test can insist on exactly one.
// Usage: node netlify_rules.mjs DIR < paths.json > answer.json
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

// ESM ignores NODE_PATH: load the packages from the node_modules the test names.
const modules = process.env.REGISTRISH_NODE_MODULES
const load = (pkg) => import(pathToFileURL(join(modules, pkg, 'lib/index.js')).href)
const { parseAllHeaders } = await load('@netlify/headers-parser')
const { parseAllRedirects } = await load('@netlify/redirect-parser')

const dir = process.argv[2]
const paths = JSON.parse(readFileSync(0, 'utf8'))
const headers = await parseAllHeaders({ headersFiles: [`${dir}/_headers`], minimal: false })
const redirects = await parseAllRedirects({ redirectsFiles: [`${dir}/_redirects`], minimal: true })

const answer = {}
for (const path of paths) {
  const matching = headers.headers.filter((rule) => rule.forRegExp.test(path))
  const setters = {}
  for (const rule of matching) {
    for (const name of Object.keys(rule.values)) {
      const key = name.toLowerCase()
      setters[key] = (setters[key] || 0) + 1
    }
  }
  answer[path] = { values: Object.assign({}, ...matching.map((r) => r.values)), setters }
}
console.log(JSON.stringify({
  paths: answer,
  rules: headers.headers.length,
  header_errors: headers.errors.map((e) => e.message),
  redirects: redirects.redirects,
  redirect_errors: redirects.errors.map((e) => e.message),
}))
