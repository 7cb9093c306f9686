package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func main() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:17071", "127.0.0.1:17072", "127.0.0.1:17073"}, Timeout: 5 * time.Second, Spread: true})
	if err != nil {
		panic(err)
	}
	ks := os.Args[1]
	f, _ := os.Create(os.Args[2])
	var n atomic.Int64
	val := make([]byte, 256)
	ctx := context.Background()
	// warm up routes
	for i := 0; i < 100; i++ {
		c.Put(ctx, ks, []byte(fmt.Sprintf("w%d", i)), val, client.Quorum{})
	}
	pprof.StartCPUProfile(f)
	end := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				if _, err := c.Put(ctx, ks, []byte(fmt.Sprintf("k%d-%d", g, i%500)), val, client.Quorum{}); err == nil {
					n.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	pprof.StopCPUProfile()
	fmt.Println("puts/s", n.Load()/10)
}
