memref.global constant @kiln_weights : memref<4xf32>
#map = affine_map<(d0) -> (d0)>
func.func @add_weights(%x: memref<4xf32>, %out: memref<4xf32>) attributes {llvm.emit_c_interface} {
  %wm = memref.get_global @kiln_weights : memref<4xf32>
  %xt = bufferization.to_tensor %x restrict : memref<4xf32> to tensor<4xf32>
  %wt = bufferization.to_tensor %wm restrict : memref<4xf32> to tensor<4xf32>
  %init = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel"]}
      ins(%xt, %wt : tensor<4xf32>, tensor<4xf32>) outs(%init : tensor<4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  }  -> tensor<4xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<4xf32>, memref<4xf32>) -> ()
  return
}
