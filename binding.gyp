{
  "targets": [
    {
      "target_name": "saga_native",
      "sources": [
        "native/src/binding.cc",
        "native/src/block_pool.cc",
        "native/src/cpu/backend.cc",
        "native/src/cpu/eviction_order.cc",
        "native/src/no_cuda.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-strict-aliasing"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1 }
      }
    }
  ]
}
