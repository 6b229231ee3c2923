// Package dashboard serves the web dashboard of `mailsts serve`: server
// rendered pages over the reports store (overview, domain drill-down,
// failures, report list, report page with raw download, rejected input),
// sign-in with a password or a token, and the access control of the JSON
// query API.
//
// Pages are html/template documents with embedded CSS and server-drawn
// SVG charts: no JavaScript, no build step, tables usable with a
// keyboard and on a phone. Everything shown comes from reports, which
// are hostile input: it reaches the page only through html/template's
// contextual escaping (and the charts draw numbers only).
//
// Access: every page but the sign-in form needs a signed-in user
// (Users); a user may be limited to some policy domains, enforced by
// reading the store through reports.Scoped. The sign-in and sign-out
// forms carry CSRF tokens; sessions live in memory, expire, and use
// HttpOnly, SameSite=Strict cookies (Secure when served over TLS or
// configured so). Sign-in attempts are rate limited per client address.
//
// Other parts of mailsts add pages through Sections: each is listed in
// the navigation and rendered inside the common layout with Render.
package dashboard
