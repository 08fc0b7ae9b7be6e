// etcd for the local control plane: the same entry point as etcd's own main package,
// built from go.etcd.io/etcd/server/v3 at the version Kubernetes itself requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
