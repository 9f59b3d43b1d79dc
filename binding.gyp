{
  "targets": [
    {
      "target_name": "vardefense_native",
      "sources": ["native/addon.cc"],
      "include_dirs": ["<!@(node native/torch-paths.js include)"],
      "libraries": ["<!@(node native/torch-paths.js libs)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-deprecated-declarations", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
