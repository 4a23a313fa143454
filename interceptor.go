package sqlitesafe

import "github.com/ngrok/sqlmw"

// interceptor sees every statement of every SQLite connection the driver
// opens.
type interceptor struct {
	sqlmw.NullInterceptor
}
