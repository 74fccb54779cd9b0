#ifndef CCRYPTO_H
#define CCRYPTO_H

#include <stdint.h>

/* DES-ECB of one 8-byte block, for VNC Authentication (RFB 7.2.2), which needs nothing else
   from OpenSSL. The key is used as given: VNC's bit reversal is the caller's. */
void cx_des_encrypt_block(const uint8_t key[8], const uint8_t input[8], uint8_t output[8]);

#endif
