// Package matrix turns version specs ("1.35,1.36,1.37", "1.33-1.37",
// "latest-3,-1.36") into concrete Kubernetes releases, runs a command once per
// version against virtual clusters of those versions, and writes the results
// as JSON, JUnit XML and a Markdown compatibility table.
package matrix
