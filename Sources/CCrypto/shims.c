/* OpenSSL 3 deprecates the DES_* functions; VNC Authentication is defined with single DES. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/des.h>
#include <string.h>
#include "ccrypto.h"

void cx_des_encrypt_block(const uint8_t key[8], const uint8_t input[8], uint8_t output[8]) {
    DES_cblock key_block, in_block, out_block;
    DES_key_schedule schedule;
    memcpy(key_block, key, 8);
    memcpy(in_block, input, 8);
    DES_set_key_unchecked(&key_block, &schedule);
    DES_ecb_encrypt(&in_block, &out_block, &schedule, DES_ENCRYPT);
    memcpy(output, out_block, 8);
}
