/* Out-of-line wrappers for DPDK's static inline fast-path functions and thread-local
 * variables, which bindgen cannot bind. Each is one call; keep them trivial. */
#ifndef FERROVS_SHIM_H
#define FERROVS_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;

uint16_t ferrovs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t ferrovs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *ferrovs_pktmbuf_alloc(struct rte_mempool *mp);
int ferrovs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void ferrovs_pktmbuf_free(struct rte_mbuf *m);
char *ferrovs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *ferrovs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *ferrovs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int ferrovs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t ferrovs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t ferrovs_pktmbuf_tailroom(const struct rte_mbuf *m);
int ferrovs_pktmbuf_is_contiguous(const struct rte_mbuf *m);
unsigned ferrovs_lcore_id(void);
int ferrovs_errno(void);
uint64_t ferrovs_rdtsc(void);
unsigned ferrovs_mempool_avail(const struct rte_mempool *mp);
#endif
