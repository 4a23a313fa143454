module github.com/sqlitesafe/sqlitesafe/dqlite

go 1.26.0

replace github.com/sqlitesafe/sqlitesafe => ../

require github.com/canonical/go-dqlite v1.22.0

require (
	github.com/Rican7/retry v0.3.0 // indirect
	github.com/google/renameio v1.0.1 // indirect
	github.com/mattn/go-sqlite3 v1.14.7 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	golang.org/x/sync v0.0.0-20210220032951-036812b2e83c // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
